from __future__ import annotations

import pytest

from rasa_llm.fallback.language_detector import LATIN_LANGUAGES, detect_language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where is my order? It was supposed to arrive yesterday.", "en"),
        ("I want a refund for my order", "en"),
        ("Can you help me with my card?", "en"),
        ("¿Dónde está mi pedido? Lo compré hace una semana.", "es"),
        ("Necesito ayuda con mi tarjeta", "es"),
        ("Bonjour, je n'ai toujours pas reçu ma commande.", "fr"),
        ("J'ai été débité deux fois pour la même commande", "fr"),
        ("Hallo, ich habe meine Bestellung noch nicht erhalten.", "de"),
        ("Wie kann ich mein Passwort ändern?", "de"),
        ("Ciao, non ho ancora ricevuto il mio ordine.", "it"),
        ("Come posso cambiare la mia password?", "it"),
        ("Olá, ainda não recebi o meu pedido.", "pt"),
        ("Preciso de ajuda com o meu cartão", "pt"),
        ("Hallo, ik heb mijn bestelling nog niet ontvangen.", "nl"),
        ("Hoe kan ik mijn wachtwoord wijzigen?", "nl"),
    ],
)
def test_short_latin_script_messages(text: str, expected: str) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Где мой заказ?", "ru"),
        ("我的订单在哪里？", "zh"),
        ("注文はまだ届いていません", "ja"),  # kanji with kana is Japanese, not Chinese
        ("주문이 아직 도착하지 않았어요", "ko"),
        ("أين طلبي؟", "ar"),
        ("Πού είναι η παραγγελία μου;", "el"),
        ("איפה ההזמנה שלי?", "he"),
        ("मेरा ऑर्डर कहाँ है?", "hi"),
        # A Latin product name inside Chinese text does not outweigh the Han characters.
        ("我的iPhone订单在哪里", "zh"),
    ],
)
def test_other_scripts_decide_by_script(text: str, expected: str) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize("text", ["refund", "Hola", "Merci", "ok", "Ok thanks", "", "   ", "12345"])
def test_one_word_empty_or_number_only_messages_are_unknown(text: str) -> None:
    assert detect_language(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "Thank you, merci beaucoup, je suis content",
        "Hello, where is mein Paket bitte",
        "Your order 我的订单",  # half Latin, half Han
        "de la",  # function words shared by several languages
    ],
)
def test_mixed_or_ambiguous_messages_are_unknown(text: str) -> None:
    assert detect_language(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "Our shop on the Rue de la Paix in Paris is open from Monday to Friday.",
        "You can collect it at our store in Saint-Germain-des-Prés during opening hours.",
        "Refunds are issued within 5-10 business days.",
    ],
)
def test_english_replies_with_french_place_names_stay_english(text: str) -> None:
    assert detect_language(text) == "en"


def test_detection_is_deterministic_and_covers_the_documented_languages() -> None:
    text = "Bonjour, je n'ai toujours pas reçu ma commande."
    assert {detect_language(text) for _ in range(5)} == {"fr"}
    assert set(LATIN_LANGUAGES) == {"en", "es", "fr", "de", "it", "pt", "nl"}
