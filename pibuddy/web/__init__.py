"""The household page: a small static page (no build step, no CDN) over a JSON API on the control layer."""
