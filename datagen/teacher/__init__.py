"""The SASRec teacher of Lu et al.: trained on a build, evaluated beside two baselines,
and queried in batches for label augmentation and rewards.

    >>> from datagen.buildfolder import BuildFolder
    >>> from datagen.teacher.folder import train_teacher, load_teacher
    >>> from datagen.teacher.settings import TeacherSettings
    >>> folder = BuildFolder.open("build/steam-sample")  # doctest: +SKIP
    >>> teacher = train_teacher(folder, TeacherSettings(), StepProgress())  # doctest: +SKIP

Modules: settings (plain dataclasses, no torch), sasrec (the model), tensors (lists -> padded tensors), objectives (losses), train, scorers
(SASRec and the baselines), evaluate (HR/NDCG protocols), checkpoint, folder
(<build>/teacher/), ranking (batched, cached answers), cli.
"""
