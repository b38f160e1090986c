"""Revisions of the permits database, in order: 0001, 0002, …"""
