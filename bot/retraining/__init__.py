"""The learning loop's Rasa side, run by the service: retrain in the background, evaluate the
candidate against the model in use, swap it into every Rasa replica, roll back."""
