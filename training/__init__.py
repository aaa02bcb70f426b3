"""Training and evaluation on datagen datasets, driven by the YAML recipes in recipes/ (shipped as datagen.training).

$ datagen train sft steam/smollm2-135m/sft
$ datagen eval --recipe steam/smollm2-135m/sft --model sft=runs/steam-smollm2-135m-sft/merged
"""
