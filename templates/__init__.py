"""The prompt templates datagen ships, read as package data (datagen.templates) through importlib.resources."""
