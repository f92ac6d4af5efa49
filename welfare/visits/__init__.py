"""Welfare visits: recurring schedules, their occurrences, the jobs that move them along."""
