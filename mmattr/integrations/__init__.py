"""Adapters to evaluation harnesses (Quantus); each module imports its harness only when used."""
