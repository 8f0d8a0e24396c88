"""Problems more than one live-operations module answers with."""

from __future__ import annotations

from gameportal.errors import NotFound


class CampaignNotFound(NotFound):
    slug = "campaign-not-found"
    title = "Campaign not found"
