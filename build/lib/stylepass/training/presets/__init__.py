"""Rebuilding a shipped preset from scratch (``stylepass train-preset``, ``python build.py train-preset``).

:mod:`.pipeline` runs the stages (dataset, training, export, held-out real assets, card, thumbnail)
and their resume logic; :mod:`.measurements` takes the card's figures (input baseline, speed);
:mod:`.card` writes ``CARD.md``; :mod:`.thumbnail` draws ``thumbnail.png``.
"""
