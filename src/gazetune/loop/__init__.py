"""gazetune.loop"""
