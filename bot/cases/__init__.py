"""Cases: escalations to a human with the whole context, root causes, CRM enrichment."""
