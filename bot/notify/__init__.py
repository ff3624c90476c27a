"""Reaching people outside Slack: their contacts (Apprise URLs), the notifications of a page
at each contact's delay, and the page's acknowledgement link."""
