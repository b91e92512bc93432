"""The page's look: Gradio's default theme with system fonts and text contrast that passes WCAG AA.

System fonts only, so the page makes no web-font requests. Gradio's default primary (orange-500) and
stop (red-500) buttons carry white text at about 2.8:1 and 3.8:1, and its subdued text (the footer)
neutral-400 on white at 2.5:1; axe-core rates these "serious" (AA asks 4.5:1). A shade darker each:
orange-700 about 5.2:1, red-700 about 6.5:1, neutral-600 about 7.6:1.
"""

from __future__ import annotations

import gradio as gr

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans CJK SC", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "monospace"]


def page_theme() -> gr.themes.Base:
    red = gr.themes.colors.red
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS).set(
        button_primary_background_fill="*primary_700",
        button_primary_background_fill_hover="*primary_800",
        button_primary_background_fill_dark="*primary_700",
        button_primary_background_fill_hover_dark="*primary_800",
        button_cancel_background_fill=red.c700,
        button_cancel_background_fill_hover=red.c800,
        button_cancel_background_fill_dark=red.c700,
        button_cancel_background_fill_hover_dark=red.c800,
        body_text_color_subdued="*neutral_600",
    )
