"""Meta's channels: WhatsApp Cloud API, Messenger with the Page's comments, Instagram."""
