"""SQL storage: chat history, the audit trail, sessions."""
