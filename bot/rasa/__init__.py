"""What runs inside or starts the Rasa server: webcare's channel, training, the stack."""
