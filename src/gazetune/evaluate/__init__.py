"""gazetune.evaluate"""
