/* chat.c - chat templates without a Jinja engine: the chat_template a tokenizer carries is
 * recognised by markers that only its family's template has, and applied by C that writes the
 * same text as the Jinja source does for messages of text plus leading images:
 *   Idefics3 / SmolVLM   "<|im_start|>" then per message "User:" (":" when the first content
 *                        is an image, else ": "), images as "<image>", text,
 *                        "<end_of_utterance>\n"; generation prompt "Assistant:"
 *   ChatML (Qwen2, llava-interleave-qwen)   "<|im_start|>role\n", "<image>\n" per image, text,
 *                        "<|im_end|>\n"; generation prompt "<|im_start|>assistant\n". Qwen2's
 *                        own template adds "You are a helpful assistant." as a system message
 *                        when the first message is not one.
 *   llava-1.5            "ROLE: " (not for system), "<image>\n" per image, text + " ";
 *                        generation prompt "ASSISTANT:"
 * The first two put images before text within a message, as the templates render them. */
#include "bpe_internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define QWEN_DEFAULT_SYSTEM "You are a helpful assistant."

int bpe_chat_kind(const struct bpe_tokenizer *tok, enum bpe_chat_kind *out, struct sb_err *err)
{
    const char *s = tok->chat_template;
    if (!s)
        return sb_fail(err, SB_ENOENT, "the tokenizer has no chat_template");
    if (strstr(s, "<end_of_utterance>") && strstr(s, "Assistant:") && strstr(s, "capitalize"))
        *out = BPE_CHAT_IDEFICS3;
    else if (strstr(s, "'<|im_start|>' + message['role']") && strstr(s, "<|im_end|>"))
        *out = BPE_CHAT_CHATML;
    else if (strstr(s, "message['role'].upper() + ': '") && strstr(s, "'ASSISTANT:'"))
        *out = BPE_CHAT_LLAVA15;
    else
        return sb_fail(err, SB_EFORMAT,
                       "chat_template '%.60s...' is not one shoebox knows "
                       "(Idefics3, ChatML, llava-1.5)",
                       s);
    return SB_OK;
}

static bool role_ok(const char *r)
{
    return r && (strcmp(r, "system") == 0 || strcmp(r, "user") == 0 || strcmp(r, "assistant") == 0);
}

int bpe_chat_apply(const struct bpe_tokenizer *tok, const struct bpe_chat_msg *msgs, size_t n,
                   bool add_generation_prompt, struct sb_buf *out, struct sb_err *err)
{
    enum bpe_chat_kind kind;
    int rc = bpe_chat_kind(tok, &kind, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (!role_ok(msgs[i].role) || msgs[i].n_images < 0)
            return sb_fail(err, SB_EINVAL,
                           "chat message %zu: role '%.20s' is not system, user "
                           "or assistant",
                           i, msgs[i].role ? msgs[i].role : "(null)");
    switch (kind) {
    case BPE_CHAT_IDEFICS3:
        sb_buf_puts(out, "<|im_start|>");
        for (size_t i = 0; i < n; i++) {
            char role[16];
            snprintf(role, sizeof(role), "%s", msgs[i].role);
            role[0] = (char)toupper((unsigned char)role[0]); /* Jinja's capitalize */
            sb_buf_puts(out, role);
            sb_buf_puts(out, msgs[i].n_images > 0 ? ":" : ": ");
            for (int k = 0; k < msgs[i].n_images; k++)
                sb_buf_puts(out, "<image>");
            sb_buf_puts(out, msgs[i].text ? msgs[i].text : "");
            sb_buf_puts(out, "<end_of_utterance>\n");
        }
        if (add_generation_prompt)
            sb_buf_puts(out, "Assistant:");
        break;
    case BPE_CHAT_CHATML:
        if (strstr(tok->chat_template, QWEN_DEFAULT_SYSTEM) &&
            (n == 0 || strcmp(msgs[0].role, "system") != 0))
            sb_buf_puts(out, "<|im_start|>system\n" QWEN_DEFAULT_SYSTEM "<|im_end|>\n");
        for (size_t i = 0; i < n; i++) {
            sb_buf_printf(out, "<|im_start|>%s\n", msgs[i].role);
            for (int k = 0; k < msgs[i].n_images; k++)
                sb_buf_puts(out, "<image>\n");
            sb_buf_puts(out, msgs[i].text ? msgs[i].text : "");
            sb_buf_puts(out, "<|im_end|>\n");
        }
        if (add_generation_prompt)
            sb_buf_puts(out, "<|im_start|>assistant\n");
        break;
    case BPE_CHAT_LLAVA15:
        for (size_t i = 0; i < n; i++) {
            if (strcmp(msgs[i].role, "system") != 0)
                sb_buf_puts(out, strcmp(msgs[i].role, "user") == 0 ? "USER: " : "ASSISTANT: ");
            for (int k = 0; k < msgs[i].n_images; k++)
                sb_buf_puts(out, "<image>\n");
            if (msgs[i].text) {
                sb_buf_puts(out, msgs[i].text);
                sb_buf_puts(out, " ");
            }
        }
        if (add_generation_prompt)
            sb_buf_puts(out, "ASSISTANT:");
        break;
    }
    if (out->failed)
        return sb_fail(err, SB_ENOMEM, "no memory for the chat text");
    return SB_OK;
}

int bpe_chat_stop_ids(const struct bpe_tokenizer *tok, int32_t *ids, int cap)
{
    static const char *const markers[] = { "<end_of_utterance>", "<|im_end|>" };
    enum bpe_chat_kind kind;
    int n = 0;
    if (bpe_chat_kind(tok, &kind, NULL) == SB_OK)
        for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
            if ((kind == BPE_CHAT_IDEFICS3) != (i == 0) || kind == BPE_CHAT_LLAVA15)
                continue;
            int32_t id = bpe_token_id(tok, markers[i]);
            if (id >= 0) {
                if (n < cap)
                    ids[n] = id;
                n++;
            }
        }
    if (tok->eos_id >= 0) {
        bool dup = false;
        for (int i = 0; i < n && i < cap; i++)
            dup = dup || ids[i] == tok->eos_id;
        if (!dup) {
            if (n < cap)
                ids[n] = tok->eos_id;
            n++;
        }
    }
    return n;
}
