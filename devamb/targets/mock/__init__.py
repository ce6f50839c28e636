"""Mock targets: route files, matching, templates, state, and turning traffic into routes."""
