"""Outbound notifications: channels (Twilio, console), message rendering and the outbox dispatcher.

Arrives with the found-resident response; imports `welfare`, never `api`.
"""
