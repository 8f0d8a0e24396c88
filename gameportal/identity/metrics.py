from prometheus_client import Counter

LOGINS = Counter("gameportal_logins_total", "Login attempts by outcome", ["outcome"])
REFRESHES = Counter("gameportal_token_refreshes_total", "Refresh attempts by outcome", ["outcome"])
REGISTRATIONS = Counter("gameportal_registrations_total", "Accounts registered")
REGISTRATIONS_THROTTLED = Counter(
    "gameportal_registrations_throttled_total", "Registrations refused by the per-address limit"
)
