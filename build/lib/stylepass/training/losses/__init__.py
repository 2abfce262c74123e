"""Losses: adversarial/pix2pix, cartoon (White-box) and VGG perceptual."""
