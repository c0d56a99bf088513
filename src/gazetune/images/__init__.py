"""gazetune.images"""
