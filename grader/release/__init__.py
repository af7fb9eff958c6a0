"""Staff tools that ship the course: the student release and the Gradescope package."""
