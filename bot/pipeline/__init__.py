"""The message path: intake → worker → Rasa → drafting policy → outbox → dispatcher."""
