"""What a test or a lesson does inside a lab, step by step."""
