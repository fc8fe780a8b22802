"""The pupil roster (issue 17): names, year and class from the school's MIS export, matched to
the login accounts the agents report, so the console can say which child it is."""
