"""Revisions of the gateway database, in order: 0001, 0002, …"""
