"""Components, incidents, scheduled maintenance and their timelines."""
