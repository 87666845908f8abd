"""Known issues and the fix announcements (broadcasts) to everyone they affected."""
