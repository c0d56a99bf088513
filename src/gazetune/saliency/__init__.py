"""gazetune.saliency"""
