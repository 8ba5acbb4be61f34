"""Server-rendered pages for contributors. Views stay thin: read through selectors/querysets that already
filter by visibility (so a hidden object is a 404), write through one service call, render a template."""
