"""Live operations: targeted marketing campaigns, A/B variants, deterministic sticky
assignment, conversions and experiment results."""

# NOTIFY channel: any change to a campaign or an A/B rule, sent after the change commits;
# every API process reloads its in-process snapshot of campaigns on it.
LIVEOPS_CHANNEL = "gameportal_liveops_changed"
