"""The guard's phone app under /guard: duty, search, scan, card, found, live incident, alerts.

Mobile first and usable with one hand. The pages are plain forms that work without JavaScript;
`static/guard.js` adds the camera scan, GPS, live updates and the offline queue for found
reports (the JSON API is idempotent on `client_request_id`, so a queued report is sent once).
`frame` holds what every guard page shows (the words for the script, the language names);
`home` the start, search, scan and card; `reports` the found and unknown-person reports;
`incident` the live incident; `alerts` the alerts of residents the public found.
"""
