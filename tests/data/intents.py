"""The starter assistant's 15 business intents (docs/intents.md), shared by the data tests."""

SERVICE_INTENTS = (
    "bill_too_high", "change_advance_payment", "payment_arrangement", "refund_status",
    "submit_meter_reading", "report_outage", "moving_house", "cancel_contract", "tariffs",
    "change_bank_details", "login_problem", "solar_feed_in", "complaint", "request_human",
    "contact_hours",
)
