"""HTTP routes: Slack's endpoint and the ones that are not Slack (health, metrics, iCal, alerts,
postmortems)."""
