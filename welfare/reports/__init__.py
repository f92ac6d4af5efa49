"""The manager's reports: visit completion, incident response times and the CSV exports.

Everything here reads (an export writes its audit entry) and returns typed models
(`models.py`); the JSON routes return them as they are and the pages draw them.
"""
