"""The DRT generator chain (``generator``) and its reverse pass, the scanner (``scanner``)."""
