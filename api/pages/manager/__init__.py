"""The manager's pages (/manage), one module per area, beside their frame and pure helpers."""
