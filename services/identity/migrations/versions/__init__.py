"""Revisions of the identity database, in order: 0001, 0002, …"""
