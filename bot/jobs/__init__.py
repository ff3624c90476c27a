"""Scheduled work (handoffs, reminders, escalations) calling domain services."""
