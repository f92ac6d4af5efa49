"""Everything Twilio: the REST client (client.py), the TwiML of calls (twiml.py), the sender
that turns the dispatcher's neutral messages into Twilio requests (sender.py), and the signed
webhooks that bring Twilio's news back (webhooks.py). Nothing outside this package knows Twilio.
"""
