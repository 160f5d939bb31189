"""States shared by every page: language, session. They import nothing from pages or components."""
