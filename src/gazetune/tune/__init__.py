"""gazetune.tune"""
