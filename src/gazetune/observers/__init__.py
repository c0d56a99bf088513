"""gazetune.observers"""
