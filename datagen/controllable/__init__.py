"""The controllable-recommendation dataset of Lu et al. 2024: tasks I0-I4 and Table 7's combined controls.

>>> from datagen.controllable.build import ControllableSettings, generate_controllable
>>> generate_controllable(BuildFolder.open("build/steam-sample"), ControllableSettings())  # doctest: +SKIP
"""
