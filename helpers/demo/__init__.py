"""Harness code of the chapters that is not their lesson, one module per chapter.

A chapter's code cells are the pika calls it teaches; what only shows or stages them (a table
of what the management API reports, threads that start workers at the same moment, a printout)
lives here, and the chapter quotes the part of it that matters. Nothing here hides a pika call
that a chapter teaches.
"""
