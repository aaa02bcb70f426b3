"""The training recipes datagen ships, read as package data (datagen.recipes) through importlib.resources."""
