"""gazetune.study"""
