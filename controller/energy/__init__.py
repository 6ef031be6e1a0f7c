"""School hours and the after-hours energy report (issue 9): timetable API and import, the energy report with its
API, command-line and console page. The timetable logic itself is ``controller.timetable``; the recurring
command scheduler is ``controller.schedules``."""
