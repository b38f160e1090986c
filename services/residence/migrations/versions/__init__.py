"""Revisions of the residence database, in order: 0001, 0002, …"""
