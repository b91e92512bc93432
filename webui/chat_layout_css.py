"""The chat page's CSS: on a phone the chat comes first and the history is a drawer.

On a narrow screen (a phone, 768 px or less) Gradio stacks the history column above the chat,
which pushed the message box about a screen and a half down. There the history becomes a
full-screen drawer, opened and closed by the "Conversations" switch above the chat. The switch is
a checkbox read by CSS (`:has`), so it opens at once, without a round trip, and no handler changes
a component's props. On a wider screen the switch is hidden and the history stays beside the chat.
"""

PHONE = "(max-width: 768px)"

CHAT_LAYOUT_CSS = f"""
#history-toggle {{ display: none; }}
@media {PHONE} {{
  #history-toggle {{
    display: block; position: sticky; top: 0; z-index: 1002; flex-grow: 0;
    background: var(--background-fill-primary);
  }}
  #history-toggle label {{ font-weight: 600; }}
  #history-drawer {{
    display: none; position: fixed; inset: 0; z-index: 1001; overflow-y: auto;
    padding: 3.5rem var(--size-4) var(--size-4); background: var(--background-fill-primary);
  }}
  #chat-tab:has(#history-toggle input:checked) #history-drawer {{ display: flex; }}
  #chat-tab:has(#history-toggle input:checked) #history-toggle {{ position: fixed; inset: 0 0 auto 0; }}
  /* The chat window leaves room for the message box on the first screen. */
  #chatbot {{ height: 52vh !important; max-height: 52vh !important; }}
  #demo-banner, #dev-login-banner {{ font-size: var(--text-sm); }}
  #demo-banner p, #dev-login-banner p {{ margin: 0; }}
}}
"""
