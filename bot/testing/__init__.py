"""Test helpers for webcare and plugin authors: fake platforms on loopback, a stand-in Rasa."""
