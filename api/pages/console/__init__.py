"""The staff console's pages, one module per area, beside the console's frame and words."""
