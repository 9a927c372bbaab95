"""The jobs dashboard of the admin: a window of the ledger drawn as a picture.

- ``queries``: what a window holds (attempts, marks, throughput, failures, queue depth
  and lag), read from the window's events only;
- ``svg``: the timeline and the small charts, as escaped inline SVG;
- ``views``: the page, mounted by ``ScheduledJobAdmin.get_urls`` at
  ``<admin>/django_future/scheduledjob/dashboard/``.
"""
