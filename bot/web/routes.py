"""Importing this module installs the non-Slack HTTP routes on every web app."""
