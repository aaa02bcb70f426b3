"""Language models as datagen uses them: loading, batched generation, constrained decoding, chat clients."""
